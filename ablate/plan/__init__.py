"""Plan stage: expand a recipe into variants (`build`, pure; their mixtures from `mixtures` for
leave-one-out and `designs` for swarm and perturb), write plan.json (`study`), show it (`view`).
`identity` hashes what decides a result; `tasks` reads eval task sizes for the power figures."""
