"""Plan stage: expand a recipe into leave-one-out variants (`build`, pure), write plan.json (`study`),
show it (`view`). `tasks` reads eval task sizes for the power figures."""
