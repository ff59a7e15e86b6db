r"""UperNet + plain ViT-S/16 on ADE20K in TinyMIM's setting (supplement Tab. 3: 512x512, lr 1e-4, 160k iterations,
batch 16, layer decay 0.65, linear schedule, warm-up 1,500, drop path 0.1); see the ViT-T config for the rest.
  python -m backbones.vit_to_mmseg CKPT work_dirs/vit-s_mmseg.pth
  python -m transfer.segmentation.train configs/segmentation/upernet_vit-s_512x512_160k_ade20k_tinymim-setting.py \
      --pretrained work_dirs/vit-s_mmseg.pth
"""
_base_ = './upernet_vit-t_512x512_160k_ade20k_tinymim-setting.py'
backbone_name = 'vit-s'
embed_dims, num_heads = 384, 6
model = dict(
    backbone=dict(embed_dims=embed_dims, num_heads=num_heads),
    neck=dict(embed_dim=embed_dims),
    decode_head=dict(in_channels=[embed_dims] * 4),
    auxiliary_head=dict(in_channels=embed_dims))
