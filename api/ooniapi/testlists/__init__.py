"""The CitizenLab test-list editor (api.md §10.1-10.4): per-account git
working copies of the test-lists repository, and pull requests on GitHub."""
