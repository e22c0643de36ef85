// placeholder: the emulator work defines CpuModel here
