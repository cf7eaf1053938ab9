"""`val_loss` over the whole validation set, from the same padded evaluation batches as `predict`; for
classification also `val_roc_auc`."""

from __future__ import annotations


def validation_loss(arrays, targets, preprocessor, rows=None, row_multiple: int = 1, scores=None):
    """A Keras callback that writes the compiled loss of the whole validation set (`rows` of
    `arrays`, with `targets`) into each epoch's logs as `val_loss` (what early stopping and the
    history read), and the entries of `scores(predictions)` (a dict) if given.

    Keras's own validation pass averages per-batch losses weighted by batch size, and compiles a
    shape for every partial batch, which differ from fold to fold. This one predicts through
    `batching.predict` (padded batches, shapes shared by folds) and evaluates the loss once.
    """
    import keras
    from keras import ops

    from keras_chem.training.batching import predict

    class ValidationLoss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            predictions = predict(self.model, arrays, preprocessor, rows=rows, row_multiple=row_multiple)
            logs["val_loss"] = float(ops.convert_to_numpy(self.model.loss(targets, predictions)))
            if scores is not None:
                logs.update(scores(predictions))

    return ValidationLoss()
