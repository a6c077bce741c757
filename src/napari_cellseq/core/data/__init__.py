"""From image + painted labels to network inputs, targets and loss weights."""
