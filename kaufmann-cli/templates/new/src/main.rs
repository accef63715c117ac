use {{lib}} as _; // links the library's handlers into the binary

kaufmann::run!();
