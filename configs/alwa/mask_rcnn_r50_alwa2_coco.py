# ALWA_2 (std only): ALWA_1's config with the other variant (Table 5).
_base_ = './mask_rcnn_r50_alwa1_coco.py'

default_hooks = dict(alwa=dict(rule=dict(variant=2)))
