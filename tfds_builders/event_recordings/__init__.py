"""event_recordings: a folder of your own event-camera recordings with frames, for distillation."""
