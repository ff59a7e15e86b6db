# Runtime defaults shared by every student recipe (distill_pretrain.train; keys documented in train.DEFAULTS).
seed = 0
amp = True                # autocast + GradScaler on GPU (ignored on CPU)
amp_dtype = 'float16'
log_interval = 50         # optimizer steps between log lines (images/s, ETA, loss, lr, teacher accuracy)
save_interval = 1000      # optimizer steps between resume states (and at every epoch end)
eval_interval = 1         # epochs between evaluations on data.val
ema = dict(decay=None)    # decay=0.9998 keeps an EMA of the student (checkpoint_ema.pth)
freeze_bn_stats = False
