"""OCI runtime bundles: config.json from an image config plus run options, and the runtime."""
