"""The simulated utility server's resources, one module per family (mixins of UtilityState)."""
