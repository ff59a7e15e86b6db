"""Runtime defaults shared by every student recipe (distill_pretrain.train; keys documented in distill_pretrain.config.DEFAULTS)."""
seed = 0
device = 'auto'           # the GPU when there is one, else the CPU ('cpu', 'cuda', 'cuda:N' to choose)
amp = True                # autocast: float16 + GradScaler on GPU; 'bfloat16' needs no scaler, runs on CPU too
amp_dtype = 'float16'
cudnn_benchmark = True    # CUDA: cuDNN times its conv algorithms once per shape and keeps the fastest
log_interval = 50         # optimizer steps between log lines (images/s, ETA, loss, lr, teacher accuracy)
save_interval = 1000      # optimizer steps between resume states (and at every epoch end)
keep_interval = 0         # epochs between kept student copies checkpoint_epoch{N}.pth (0: none)
eval_interval = 1         # epochs between evaluations on data.val
ema = dict(decay=None)    # decay=0.9998 keeps an EMA of the student (checkpoint_ema.pth)
freeze_bn_stats = False
