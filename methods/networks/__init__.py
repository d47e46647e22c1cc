"""Networks used by the methods (V-Net family, URPC's U-Net, discriminators, the DAE)."""
