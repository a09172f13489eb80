# Faster R-CNN R50-FPN on VOC0712 trained with AdamW (Table 1, AdamW column:
# lr 1e-4, weight decay 0.05, as in the ALWA paper's 4.1).
_base_ = './faster_rcnn_r50_baseline_voc.py'

optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001,
                   weight_decay=0.05))
