"""HTTP layer: routes per protocol, middleware, error mapping. Thin: no inference logic."""
