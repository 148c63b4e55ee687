"""Test-helper rotation: spawns, checks, publishes, drains and destroys
test-helper VMs through a cloud provider, tracking each step in
``test_helper_instances``."""
