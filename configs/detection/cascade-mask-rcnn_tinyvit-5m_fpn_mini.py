"""Small-data path: TinyViT-5M Cascade Mask R-CNN with the same head types, slimmed (64-channel FPN and heads,
few proposals / RoIs), at reduced resolution, iteration-based; trains and evaluates on the same COCO json.

Defaults read the real mini set at $TINYVIT_DET_MINI (default data/mini_coco), built by
`python -m transfer.detection.mini_coco data/mini_coco`; any other COCO json + image folder: `--data`.

    python -m transfer.detection.train configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py [--data ANN IMG_DIR]
    python tools/train.py configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py           # mmdet's own tools
    python tools/test.py configs/detection/cascade-mask-rcnn_tinyvit-5m_fpn_mini.py work_dirs/.../iter_300.pth
"""
_base_ = ['./cascade-mask-rcnn_tinyvit-5m_fpn_1x_coco.py']

channels = 64
img_scale = (192, 192)
max_iters = 300
val_interval = 50
dataset_name = 'mini_coco'
data_root = '{{$TINYVIT_DET_MINI:data/mini_coco}}/'
classes = ('bottle', 'bus', 'car', 'chair', 'diningtable', 'person', 'sofa')
num_classes = 7

model = dict(
    backbone=dict(init_cfg=None, drop_path_rate=0.0),
    neck=dict(out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=[
            dict(
                type='ConvFCBBoxHead',
                num_shared_convs=4,
                num_shared_fcs=1,
                in_channels=channels,
                conv_out_channels=channels,
                fc_out_channels=256,
                roi_feat_size=7,
                num_classes=num_classes,
                bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
                reg_class_agnostic=False,
                reg_decoded_bbox=True,
                norm_cfg=dict(type='BN', requires_grad=True),
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1], [0.033, 0.033, 0.067, 0.067])
        ],
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(num_convs=2, in_channels=channels, conv_out_channels=channels, num_classes=num_classes)),
    train_cfg=dict(
        rpn=dict(sampler=dict(num=128)),
        rpn_proposal=dict(nms_pre=300, max_per_img=100),
        rcnn=[
            dict(
                assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                              match_low_quality=False, ignore_iof_thr=-1),
                sampler=dict(type='RandomSampler', num=64, pos_fraction=0.25, neg_pos_ub=-1,
                             add_gt_as_proposals=True),
                mask_size=28,
                pos_weight=-1,
                debug=False) for iou in (0.5, 0.6, 0.7)
        ]),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
_dataset = dict(
    type='CocoDataset',
    data_root=data_root,
    ann_file='annotations.json',
    data_prefix=dict(img='images/'),
    metainfo=dict(classes=classes))
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(**_dataset, filter_cfg=dict(filter_empty_gt=True, min_size=0), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(**_dataset, test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='CocoMetric', ann_file=data_root + 'annotations.json', metric=['bbox', 'segm'])
test_evaluator = val_evaluator

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=val_interval)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters, milestones=[int(max_iters * 0.8)],
         gamma=0.1),
]
optim_wrapper = dict(optimizer=dict(lr=4e-4))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(by_epoch=False, interval=val_interval, max_keep_ckpts=1),
    visualization=dict(draw=False))
log_processor = dict(by_epoch=False)
