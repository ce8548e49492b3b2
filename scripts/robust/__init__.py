"""Library for reproducing Kaur, Cohen & Lipton (2019): perceptually-aligned gradients of robust
classifiers.

Modules, one concept each:
    data        dataset registry (cifar10, synthetic, imagenet); images are float tensors in [0, 1]
    download    fetch + md5 check + atomic extraction of archives
    synthetic   the offline procedurally generated CIFAR-shaped dataset with class prototypes
    models      architecture registry, Normalize-first wrapper
    checkpoint  plain-dict checkpoints loadable with ``torch.load(..., weights_only=True)``
    training    one training loop; perturbations: none, gaussian, pgd
    stats       Clopper-Pearson bound, two-sided binomial test, normal quantile (numpy + stdlib)
    smoothing   ``Smooth``: Cohen et al.'s PREDICT and CERTIFY
    attacks     PGD per threat model (l2, linf), targeted and untargeted
    pag         perceptually aligned images for plain and smoothed classifiers
    metrics     certified accuracy, average certified radius, abstention, clean/robust accuracy
    io          atomic file writes

Nothing here picks a device, reads ``params.yaml`` or exits the process.
"""

__version__ = "0.1.0"
