"""Resuming training from the newest checkpoint that reads (rec_lib.training.worker.restore_newest)."""
import tensorflow as tf

from rec_lib.training.worker import restore_newest


def fresh_state(folder):
    def make():
        value = tf.Variable([0.0, 0.0], name="value")
        epoch = tf.Variable(0, dtype=tf.int64, name="epoch")
        checkpoint = tf.train.Checkpoint(value=value, epoch=epoch)
        return value, epoch, checkpoint, tf.train.CheckpointManager(checkpoint, str(folder), max_to_keep=2)
    return make


def save_epochs(folder, epochs):
    value, epoch, _, manager = fresh_state(folder)()
    for e in epochs:
        value.assign([float(e), 10.0 * e])
        epoch.assign(e)
        manager.save(checkpoint_number=e)
    return manager


def test_the_newest_checkpoint_is_restored(tmp_path):
    save_epochs(tmp_path, [1, 2])
    (value, epoch, _, _), restored = restore_newest(str(tmp_path), fresh_state(tmp_path))
    assert restored.endswith("ckpt-2") and int(epoch.numpy()) == 2 and value.numpy().tolist() == [2.0, 20.0]


def test_a_corrupt_newest_checkpoint_falls_back_to_the_one_before(tmp_path):
    save_epochs(tmp_path, [1, 2])
    for data in tmp_path.glob("ckpt-2.data-*"):
        data.write_bytes(b"\0" * 7)  # truncated, as a disk that filled up mid-write leaves it
    (value, epoch, _, _), restored = restore_newest(str(tmp_path), fresh_state(tmp_path))
    assert restored.endswith("ckpt-1") and int(epoch.numpy()) == 1 and value.numpy().tolist() == [1.0, 10.0]


def test_no_readable_checkpoint_starts_from_the_first_epoch(tmp_path):
    save_epochs(tmp_path, [1])
    (tmp_path / "ckpt-1.index").unlink()
    (value, epoch, _, _), restored = restore_newest(str(tmp_path), fresh_state(tmp_path))
    assert restored is None and int(epoch.numpy()) == 0 and value.numpy().tolist() == [0.0, 0.0]
    (value, epoch, _, _), restored = restore_newest(str(tmp_path / "empty"), fresh_state(tmp_path / "empty"))
    assert restored is None and int(epoch.numpy()) == 0
