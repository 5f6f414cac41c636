"""Pure domain logic: no AWS, no HTTP, no environment. Time comes in as a parameter."""
