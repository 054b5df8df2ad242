"""Models: the VAE and VAE+NN of the reference paper, their training and their scores.

Modules:

- `paths`: the model kinds, model directory names and file names (no TensorFlow);
- `preprocessing`: log10 and min-max scaling fitted on the SM training split (no TensorFlow);
- `networks`: the Keras models, their losses and per-event scores, saving and loading;
- `network_export`, `numpy_networks`: the trained networks as `network.npz` and their forward
  pass in NumPy, which scoring and the report use (no TensorFlow);
- `parquet_batches`: a dataset read in batches, only the columns asked for;
- `row_cache`: a float32 matrix in an anonymous file on disk, read a range of rows at a time;
- `training_data`: the training data streamed into row caches, the per-epoch order and batches,
  the tf.data pipeline;
- `training_step`: one epoch of training as a compiled graph loop, the fused Adam update, the
  validation loss;
- `checkpoints`: the per-epoch checkpoint that makes a resumed training exact;
- `data_parallel`: one model trained on all MPI ranks (each a share of every batch, the
  gradients summed with one Allreduce per step; rank 0 decides and writes);
- `training`: the train stage (`vbsad train`): resume, fit, write the model directory;
- `scoring`: the score stage (`vbsad score`): per-event scores of every test dataset;
- `parallel`: the model stages over MPI ranks: the grid round-robin (task parallel) or each
  model data parallel, and TensorFlow's threads per rank.

Only `networks`, `training*`, `checkpoints`, `data_parallel` and `parallel` (when it trains)
import TensorFlow; `scoring` does not.
"""
