# MATL in the RoI head together with ALWA_1 on the RPN's cls/reg losses
# (where Yu et al. put ALWA in two-stage detectors). Knobs: matl_* in
# ./faster_rcnn_r50_matl_voc.py, alwa_* in ../alwa/_base_/alwa1_rpn.py.
_base_ = [
    './faster_rcnn_r50_matl_voc.py',
    '../alwa/_base_/alwa1_rpn.py',
]
