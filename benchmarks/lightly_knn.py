"""Weighted kNN on torch features: keras_simclr's definition, for the lightly reference.

Checked against `keras_simclr.evaluation.weighted_knn_predict` and lightly's `knn_predict` in
`tests/benchmarks/lightly_reference_test.py`. torch is imported where used.
"""


def weighted_knn_predict(
    train_features,
    train_labels,
    query_features,
    num_classes,
    k=200,
    temperature=0.1,
    batch_size=512,
):
    """Weighted kNN (InstDisc eq. 7), the definition of keras_simclr's `weighted_knn_predict`.

    Features are L2-normalized; each query's `k` most cosine-similar
    training features vote for their class with weight
    `exp(similarity / temperature)`; the prediction is the class with the
    largest summed weight (the lowest class index on an exact tie). Each
    query's weights are scaled by `exp(-max similarity / temperature)`,
    which leaves the ranking unchanged.

    Args:
        train_features: `(N, F)` float tensor or array, the memory bank.
        train_labels: `(N,)` integer labels in `[0, num_classes)`.
        query_features: `(Q, F)`.
        num_classes: number of classes.
        k: neighbours, `1 <= k <= N`.
        temperature: vote temperature, `> 0`.
        batch_size: queries per chunk.

    Returns:
        an int64 `torch.Tensor` of `Q` predictions.
    """
    import torch
    import torch.nn.functional as F

    bank = F.normalize(torch.as_tensor(train_features, dtype=torch.float32), dim=1)
    labels = torch.as_tensor(train_labels, dtype=torch.int64, device=bank.device).reshape(-1)
    queries_all = torch.as_tensor(query_features, dtype=torch.float32, device=bank.device)
    if bank.ndim != 2 or queries_all.ndim != 2 or bank.shape[1] != queries_all.shape[1]:
        raise ValueError(
            "train_features and query_features must be 2-D with the same width. "
            f"Received: shapes {tuple(bank.shape)} and {tuple(queries_all.shape)}"
        )
    if labels.shape[0] != bank.shape[0]:
        raise ValueError(
            f"train_labels must hold one label per training feature. Received: "
            f"{labels.shape[0]} labels for {bank.shape[0]} features"
        )
    if not 1 <= k <= bank.shape[0]:
        raise ValueError(
            f"k must be between 1 and the number of training features ({bank.shape[0]}). "
            f"Received: k={k}"
        )
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0. Received: temperature={temperature}")
    predictions = []
    for start in range(0, len(queries_all), batch_size):
        queries = F.normalize(queries_all[start : start + batch_size], dim=1)
        top, neighbours = (queries @ bank.T).topk(k, dim=1)  # sorted: top[:, 0] is the max
        weights = torch.exp((top - top[:, :1]) / temperature)
        scores = torch.zeros(len(queries), num_classes, dtype=torch.float32, device=bank.device)
        scores.scatter_add_(1, labels[neighbours], weights)
        predictions.append(scores.argmax(dim=1))  # the first maximum: the lowest class index
    return torch.cat(predictions)


def extract_features(backbone, images, args, batch_size=512):
    """Backbone features of uint8 images scaled to [0, 1] (no normalization), in eval mode."""
    import torch

    device = torch.device(args.device)
    backbone.eval()
    features = []
    with (
        torch.no_grad(),
        torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=args.precision == "mixed_bfloat16"
        ),
    ):
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(images[start : start + batch_size]).to(device)
            x = x.permute(0, 3, 1, 2).float().div_(255.0)
            features.append(backbone(x).flatten(start_dim=1).float())
    backbone.train()
    return torch.cat(features)
