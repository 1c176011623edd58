pytest_plugins = ["tether.testing"]
