flowbus listener add execution 8a2c4f1e-5b6d-4e7f-9a0b-1c2d3e4f5a6b https://hooks.example.com/mistral
