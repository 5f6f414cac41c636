"""The ``lifeboat`` command: the same core as the Lambda functions, run locally."""
