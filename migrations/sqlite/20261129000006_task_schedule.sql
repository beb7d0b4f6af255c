-- A task's sampler schedule overrides (num_train_timesteps, betas, beta
-- schedule, prediction type, timestep spacing, Karras sigmas, flow shift,
-- eta): a JSON object of the knobs set, {} when the model's own apply.
ALTER TABLE tasks ADD COLUMN schedule TEXT NOT NULL DEFAULT '{}';
