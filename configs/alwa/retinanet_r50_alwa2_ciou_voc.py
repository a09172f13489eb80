_base_ = './retinanet_r50_alwa1_ciou_voc.py'

default_hooks = dict(alwa=dict(rule=dict(variant=2)))
