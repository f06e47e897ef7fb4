"""The study folder's contract, below every stage: its paths and atomic writes (store), its typed JSON
files and their one writer each (artifacts), and a job folder's states and next action (job). Plan, run
and report hand off only through these files, so they all import from here and nothing here imports
them."""
