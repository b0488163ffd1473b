"""TFDS builder of EventScape, the CARLA event dataset of RAM-Net that DepthAnyEvent pretrains on."""
