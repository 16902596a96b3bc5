"""全程录音: what is recorded (policy), where the files are and how they are finished (store)."""
