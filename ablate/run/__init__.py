"""Run stage: continue every variant from the shared checkpoint and evaluate it.

    job       a job folder's contract: names, states, exit codes, lock, status, staleness, next_action
    runner    decides each job's action, starts jobs through a launcher, watches their status
    launch    how a job gets its process(es): local fork server, Composer's launcher, Slurm
    worker    what one job process does (`python -m ablate.run.worker STUDY JOB`), and pretraining
    train     Composer training over streaming MDS shards (imports torch)
    evaluate  lm-eval on the trained model (imports lm_eval)
    view      the terminal display of a run and of `ablate status`

Only `train`, `evaluate` and `worker`'s job bodies import the heavy stack; `job` and `runner` do not.
"""
