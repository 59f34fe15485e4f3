"""Every answer kept, reused and re-scored: a case's transcript (:mod:`.transcript`), the key that
says two requests are the same (:mod:`.keys`, pure), the index of earlier answers read from result
parts (:mod:`.index`), the client wrapper that answers from it (:mod:`.client`), and the commands
``benchpilot rescore`` and ``benchpilot cache explain`` (:mod:`.commands`)."""
