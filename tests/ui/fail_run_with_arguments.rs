kaufmann::run!(workers = 4);
