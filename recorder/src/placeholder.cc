// placeholder until the recorder work lands
