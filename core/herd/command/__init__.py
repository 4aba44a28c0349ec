"""Commands into machines through herd's agent: the channel to an agent and the machine handle whose
commands go through one."""
