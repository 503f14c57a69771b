"""Data sets: the registry and loaders (IDX files, torchvision, generated sets), batching, augmentation."""
