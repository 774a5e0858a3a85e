"""Networks of the gan and ce plugins: the DCGAN (with its trainer) and the Context Encoder."""
