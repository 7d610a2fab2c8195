"""Numbers that mmseg fixes and several modules share, defined once."""

# The label of pixels that no loss, metric or picture counts (mmseg's `ignore_index`).
IGNORE_INDEX = 255

# mmseg's data preprocessor: per-channel RGB mean and std on the 0-255 scale.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

# The scales of mmseg's multi-scale test (its `TestTimeAug` ratios).
MULTI_SCALE_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
