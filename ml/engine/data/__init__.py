"""The data: a folder's images and manifests (`samples`), honest patient-grouped splits and their
fingerprints (`splits`), synthetic demo films (`synthetic`), and the tf.data input pipeline with
its augmentation (`pipeline`).

May import `decode`, `model` and `prepare`."""
