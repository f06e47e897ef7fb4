"""Run stage: continue every variant from the shared checkpoint and evaluate it.

    runner    decides each job's action (ablate.job.next_action), starts jobs through a launcher, watches them
    launch    how a job gets its process(es): local fork server, Composer's launcher, Slurm
    worker    what one job process does (`python -m ablate.run.worker STUDY JOB`), and pretraining
    start     the model and tokenizer a run begins from (a checkpoint, a model folder, the recipe)
    stream    the phase's data: one streaming Stream per subset, weighted by the mixture
    train     Composer training: the LR in absolute tokens, the loss log, fit()
    evaluate  lm-eval on the trained model
    dist      rank and world size from the launcher's environment
    view      the terminal display of a run and of `ablate status`

start, stream, train and evaluate import torch, Composer, streaming or lm-eval; the others do not,
so deciding, launching and watching stay fast.
"""
