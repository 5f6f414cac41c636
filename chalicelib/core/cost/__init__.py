"""A monthly cost estimate from a cluster's shape and a policy, itemised by AWS service (pure: no AWS calls)."""
