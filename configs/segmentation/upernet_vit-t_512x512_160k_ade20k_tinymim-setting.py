r"""UperNet + plain ViT-T/16 on ADE20K in TinyMIM's setting (supplement Tab. 3): 512x512, AdamW lr 1e-4,
betas (0.9, 0.999), eps 1e-8, wd 0.05, layer-wise lr decay 0.65, linear schedule to 0 after 1,500 warm-up
iterations, stochastic depth 0.1, batch 16 (8 GPUs x 2), 160k iterations. Everything else is mmseg's own MAE
UperNet recipe (read from the installed package via `mmseg::`): its `MAE` backbone (BEiT-style, layer scale 1.0 =
a plain ViT), `Feature2Pyramid` neck (x4, x2, x1, x0.5 from blocks 4/6/8/12), mmseg's
`LearningRateDecayOptimizerConstructor` (decay_type 'layer_wise_vit'). BN instead of SyncBN (CPU / one GPU;
multi-GPU: `--cfg-options` or `--sync-bn`).
Weights: mmseg's MAE backbone reads mmseg names and ignores unknown keys silently, so convert first:
  python -m backbones.vit_to_mmseg CKPT work_dirs/vit-t_mmseg.pth     # ours / official MAE / timm → mmseg names
  python -m transfer.segmentation.train configs/segmentation/upernet_vit-t_512x512_160k_ade20k_tinymim-setting.py \
      --pretrained work_dirs/vit-t_mmseg.pth
"""
_base_ = 'mmseg::mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py'
custom_imports = dict(imports=['backbones'], allow_failed_imports=False)
dataset_name = 'ade20k'
backbone_name = 'vit-t'
embed_dims, num_heads = 192, 3
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(embed_dims=embed_dims, num_heads=num_heads, num_layers=12, drop_path_rate=0.1,
                  out_indices=[3, 5, 7, 11], init_cfg=None),
    neck=dict(embed_dim=embed_dims, norm_cfg=norm_cfg),
    decode_head=dict(in_channels=[embed_dims] * 4, channels=512, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=embed_dims, norm_cfg=norm_cfg))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05),
    paramwise_cfg=dict(num_layers=12, decay_rate=0.65, decay_type='layer_wise_vit'),
    constructor='LearningRateDecayOptimizerConstructor')
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)  # power 1 = linear
]
fp16 = None  # mmseg's base asks for AMP with a 0.x-style key; pass --amp to the runner on GPUs instead
