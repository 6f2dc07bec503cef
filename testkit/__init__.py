"""Development-only helpers shared by the tests and the benches (never installed with the
bot): the local Discord API double, the real bot running against it, stand-in runners."""
