# ALWA_1 on the RoI head instead of the RPN (issue 19's fix as an option;
# docs/alwa.md, "Small objects"): the same rule and window as
# faster_rcnn_r18_alwa1_small_demo.py, balancing the second stage's
# classification against its box regression; the RPN's objectness loss keeps
# its weight, so the proposals of small objects are not starved.
_base_ = ['./faster_rcnn_r18_alwa1_small_demo.py']

default_hooks = dict(alwa=dict(head='roi_head.bbox_head'))
