"""Run stage: continue every variant from the shared checkpoint and evaluate it.

    runner    decides each job's action (ablate.study.job.next_action), starts jobs through a launcher, watches them
    launch    how a job gets its process(es): local fork server, Composer's launcher, Slurm
    folder    what a runner reads off a job folder before it decides (status, latest checkpoint, outputs)
    worker    what one job process does (`python -m ablate.run.worker STUDY JOB`)
    pretrain  the shared start, trained from scratch under the same job rules
    start     the model and tokenizer a run begins from (a checkpoint, a model folder, the recipe)
    stream    the phase's data: one streaming Stream per subset, weighted by the mixture
    train     Composer training: fit() and the optimizer; schedule (the LR in absolute tokens), train_log
              (the loss log), kept (checkpoints kept at phase starts), fsdp (FSDP2), trackers (MLflow, W&B)
    export    the trained model as a Hugging Face folder
    evaluate  lm-eval on the trained model; heldout, the per-domain held-out loss
    slurm     sbatch scripts, the scheduler's states, scancel
    dist      rank and world size from the launcher's environment
    view      the terminal display of a run and of `ablate status`

start, stream, train and evaluate import torch, Composer, streaming or lm-eval; the others do not,
so deciding, launching and watching stay fast.
"""
