"""Parts of the learning loop (:mod:`napari_cellist.learning_loop` is its API)."""
