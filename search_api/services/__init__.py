"""The service layer: what the JSON routes, the CLI and the web pages all call.

Plain Python arguments in, domain results out, and domain errors (services.errors) for refusals: no HTTP here.
`generations` holds the generation in use, `search` asks it, `documents` and `contributions` read and change the
catalog as a caller may, `callers` says who is asking.
"""
