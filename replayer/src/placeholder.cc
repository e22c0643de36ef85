// placeholder until the replayer work lands
