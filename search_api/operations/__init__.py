"""Operations: what drives the indexer from the read side (build runner, scheduler, quality gate, evaluation).

Beside the HTTP layers, not under them: routes may start a build through the runner, but never import the
build pipeline themselves."""
