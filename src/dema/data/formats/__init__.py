"""One reader per on-disk format; each returns an unvalidated `OfflineDataset`.

    d4rl        D4RL hdf5 (also what `dema collect` writes)
    minari      Minari local datasets: hdf5 storage read with h5py, arrow storage through minari
    dt_pickle   Decision Transformer's `*.pkl` (a list of episode dicts), restricted unpickler
    dqn_replay  DQN-replay / dopamine Atari checkpoints (`$store$_*_ckpt.N.gz`)
    dqn_replay_sampling  Decision Transformer's 1% sample of a DQN-replay game, what Atari runs train on

`dema.data.load.load_dataset` picks the reader and validates the result (`load_training_data`,
what `dema train` reads, samples a DQN-replay game as DT does).
"""
