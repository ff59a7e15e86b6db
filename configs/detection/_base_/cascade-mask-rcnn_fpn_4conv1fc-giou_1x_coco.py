"""Cascade Mask R-CNN, FPN, the 4conv1fc GIoU cascade heads of Swin's / ConvNeXt's cascade configs, COCO 1x.

Everything comes from mmdet's own _base_ files (read from the installed package via the `mmdet::` scope); this
file only changes what the TinyViT paper's recipe (Swin's) needs: the heads, BN instead of SyncBN, AdamW 1e-4 /
wd 0.05 / no decay on norms, biases and attention biases, steps at 8 and 11, linear warm-up. Its checkpoints are
plain (`tinyvit_bench.PlainCheckpointHook`), so mmdet's own tools read them under torch >= 2.6. A base: run a
variant, e.g.

    python -m transfer.detection.train configs/detection/cascade-mask-rcnn_tinyvit-21m_fpn_1x_coco.py --pretrained CKPT
    python tools/train.py configs/detection/cascade-mask-rcnn_tinyvit-21m_fpn_1x_coco.py   # mmdet's own tool
"""
_base_ = [
    'mmdet::_base_/models/cascade-mask-rcnn_r50_fpn.py',
    'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['backbones', 'transfer.detection'], allow_failed_imports=False)

num_classes = 80
model = dict(
    roi_head=dict(
        bbox_head=[
            dict(
                type='ConvFCBBoxHead',
                num_shared_convs=4,
                num_shared_fcs=1,
                in_channels=256,
                conv_out_channels=256,
                fc_out_channels=1024,
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
        mask_head=dict(num_classes=num_classes)))

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
# Layer-wise LR decay is off (rate 1.0) as in the paper's Swin recipe; set
# `optim_wrapper.paramwise_cfg.layer_decay_rate=0.8` (etc.) to turn it on for a TinyViT backbone.
optim_wrapper = dict(
    type='OptimWrapper',
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0),
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999), weight_decay=0.05))

# Records written by transfer.detection.{train,test} use this name for the data set.
dataset_name = 'coco'
# The project's hooks (registered by custom_imports): checkpoints torch.load(weights_only=True) reads, and the
# validation curve in <work_dir>/metric_history.json.
default_hooks = dict(checkpoint=dict(type='tinyvit_bench.PlainCheckpointHook'))
custom_hooks = [dict(type='tinyvit_bench.MetricHistoryHook', task='detection')]
