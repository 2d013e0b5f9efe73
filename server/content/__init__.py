"""Content bundles on the server: the signing key, the content-addressed store, rollouts as retained desired
state, and the HTTP routes for admins and devices."""
